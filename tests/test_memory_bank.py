"""GLUS's memory bank: read positions (reference §5.4), readout layout, and pruning of dead entries."""

from __future__ import annotations

import random

import pytest
import torch

from glus_cli.model.memory_bank import MEM_STRIDE, NUM_MASKMEM, MemoryBank, MemoryEntry, memory_read_positions

# Worked out by hand from the official loop (GLUS.py L240-259) for num_maskmem 7, mem_stride 3:
# t_rel = 7..1, t_rel 1 reads t-1, the others ((t-2)//3)*3 - (t_rel-2)*3; negative positions skipped.
READS_7_3 = {
    0: [],
    1: [0],
    2: [0, 1],
    3: [0, 2],
    4: [0, 3],
    5: [0, 3, 4],
    6: [0, 3, 5],
    7: [0, 3, 6],
    8: [0, 3, 6, 7],
    9: [0, 3, 6, 8],
    10: [0, 3, 6, 9],
    11: [0, 3, 6, 9, 10],
    12: [0, 3, 6, 9, 11],
    13: [0, 3, 6, 9, 12],
    14: [0, 3, 6, 9, 12, 13],
    15: [0, 3, 6, 9, 12, 14],
    16: [0, 3, 6, 9, 12, 15],
    17: [0, 3, 6, 9, 12, 15, 16],
    18: [0, 3, 6, 9, 12, 15, 17],
    19: [0, 3, 6, 9, 12, 15, 18],
    20: [3, 6, 9, 12, 15, 18, 19],
}

# Each (num_maskmem, mem_stride) pair the pruning properties are checked for.
BANK_SHAPES = [(7, 3), (7, 1), (7, 2), (3, 3), (2, 4), (1, 1), (1, 3), (4, 5), (9, 2)]


def test_defaults_are_the_official_inference_setting() -> None:
    assert (NUM_MASKMEM, MEM_STRIDE) == (7, 3)
    bank = MemoryBank()
    assert (bank.num_maskmem, bank.mem_stride) == (7, 3)


@pytest.mark.parametrize(("position", "expected"), sorted(READS_7_3.items()))
def test_read_positions_hand_table(position: int, expected: list[int]) -> None:
    assert memory_read_positions(position, 7, 3) == expected
    assert memory_read_positions(position) == expected


def test_read_positions_far_in_the_video() -> None:
    assert memory_read_positions(101) == [84, 87, 90, 93, 96, 99, 100]
    assert memory_read_positions(102) == [84, 87, 90, 93, 96, 99, 101]


def test_read_positions_stride_one_is_the_last_frames() -> None:
    """With stride 1 (the training setting) the bank is simply the previous num_maskmem frames."""
    for position in range(40):
        assert memory_read_positions(position, 7, 1) == list(range(max(0, position - 7), position))


def test_read_positions_invariants() -> None:
    for num_maskmem, stride in BANK_SHAPES:
        for position in range(120):
            reads = memory_read_positions(position, num_maskmem, stride)
            assert reads == sorted(set(reads)), (num_maskmem, stride, position)
            assert len(reads) <= num_maskmem
            assert all(0 <= p < position for p in reads)
            if position > 0:
                assert reads[-1] == position - 1
            # Every read but the last lies on the stride grid.
            assert all(p % stride == 0 for p in reads[:-1])


def _entry(position: int, channels: int = 2, height: int = 2, width: int = 3) -> MemoryEntry:
    """An entry whose values spell out (position, channel, y, x), to check the readout layout."""
    c, y, x = torch.meshgrid(torch.arange(channels), torch.arange(height), torch.arange(width), indexing="ij")
    code = (position * 1000 + c * 100 + y * 10 + x).float()[None]
    return MemoryEntry(features=code, pos_enc=-code)


def test_read_concatenates_oldest_first_in_sam2_layout() -> None:
    bank = MemoryBank(7, 3)
    for position in range(9):
        bank.write(position, _entry(position))
    readout = bank.read(8)
    assert readout is not None
    assert readout.positions == [0, 3, 6, 7]
    assert readout.memory.shape == (4 * 6, 1, 2)  # (frames * H * W, batch, channels)
    assert readout.memory_pos.shape == (4 * 6, 1, 2)
    for frame, position in enumerate(readout.positions):
        for y in range(2):
            for x in range(3):
                token = frame * 6 + y * 3 + x
                for c in range(2):
                    expected = position * 1000 + c * 100 + y * 10 + x
                    assert readout.memory[token, 0, c].item() == expected
                    assert readout.memory_pos[token, 0, c].item() == -expected


def test_read_skips_missing_entries() -> None:
    """A frame whose [SEG] was not generated wrote nothing; later reads skip it, as the official code."""
    bank = MemoryBank(7, 3)
    for position in range(9):
        if position != 3:
            bank.write(position, _entry(position))
    readout = bank.read(8)
    assert readout is not None
    assert readout.positions == [0, 6, 7]
    assert readout.memory.shape == (3 * 6, 1, 2)
    assert readout.memory[6:12, 0, 0].tolist() == [6000, 6001, 6002, 6010, 6011, 6012]


def test_read_returns_none_when_nothing_is_readable() -> None:
    """No readable memory means SAM2's no_mem_embed path."""
    bank = MemoryBank(7, 3)
    assert bank.read(0) is None
    assert bank.read(5) is None
    bank.write(2, _entry(2))  # position 5 reads [0, 3, 4]: 2 is not among them
    assert bank.read(5) is None
    assert bank.read(3) is not None


def test_write_overwrites_and_clear_forgets() -> None:
    bank = MemoryBank(7, 3)
    bank.write(0, _entry(0))
    bank.write(0, _entry(5))
    readout = bank.read(1)
    assert readout is not None
    assert readout.memory[0, 0, 0].item() == 5000
    assert len(bank) == 1 and 0 in bank and bank.positions() == [0]
    bank.clear()
    assert len(bank) == 0 and bank.read(1) is None


@pytest.mark.parametrize(("num_maskmem", "stride"), [(0, 3), (7, 0), (-1, 1)])
def test_bank_rejects_non_positive_sizes(num_maskmem: int, stride: int) -> None:
    with pytest.raises(ValueError):
        MemoryBank(num_maskmem, stride)


def _walk(num_maskmem: int, stride: int, length: int, skip_rate: float, seed: int):
    """Drive a bank as the pipeline does (read, write unless [SEG] failed, discard) and yield each step.

    Yields (position, positions the read returned, positions an unpruned bank would have returned, bank).
    """
    rng = random.Random(seed)
    bank = MemoryBank(num_maskmem, stride)
    written: set[int] = set()
    tiny = MemoryEntry(torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1))
    for position in range(length):
        readout = bank.read(position)
        got = readout.positions if readout is not None else []
        wanted = [p for p in memory_read_positions(position, num_maskmem, stride) if p in written]
        if rng.random() >= skip_rate:
            bank.write(position, tiny)
            written.add(position)
        bank.discard_unreadable(position + 1)
        yield position, got, wanted, bank


@pytest.mark.parametrize(("num_maskmem", "stride"), BANK_SHAPES)
@pytest.mark.parametrize("skip_rate", [0.0, 0.3])
def test_discard_never_drops_an_entry_a_later_read_needs(
    num_maskmem: int, stride: int, skip_rate: float
) -> None:
    for position, got, wanted, _ in _walk(
        num_maskmem, stride, 200, skip_rate, seed=num_maskmem * 31 + stride
    ):
        assert got == wanted, (num_maskmem, stride, position)


@pytest.mark.parametrize(("num_maskmem", "stride"), BANK_SHAPES)
def test_discard_drops_entries_below_every_future_read(num_maskmem: int, stride: int) -> None:
    for position, _, _, bank in _walk(num_maskmem, stride, 200, 0.0, seed=0):
        future_reads = {
            p
            for t in range(position + 1, position + 3 * num_maskmem * stride + 3)
            for p in memory_read_positions(t, num_maskmem, stride)
        }
        assert min(bank.positions()) >= min(future_reads), (num_maskmem, stride, position)


@pytest.mark.parametrize(("num_maskmem", "stride"), BANK_SHAPES)
def test_discard_keeps_at_most_num_maskmem_entries(num_maskmem: int, stride: int) -> None:
    """Only t-1 and the stride grid are ever read again, so a pruned bank holds at most num_maskmem entries.

    (MemoryBank's docstring promises this bound for long videos.)
    """
    for position, _, _, bank in _walk(num_maskmem, stride, 200, 0.0, seed=0):
        assert len(bank) <= num_maskmem, (num_maskmem, stride, position, bank.positions())
