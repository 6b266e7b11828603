"""GLUS model parts: checkpoint loading, tokenizer and prompt, language model, SAM2 segmenter, memory bank."""
