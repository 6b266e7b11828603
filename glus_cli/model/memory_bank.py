"""GLUS's memory bank: SAM2-style mask memories of earlier query frames, read with GLUS's own formula.

GLUS does not use SAM2's `_prepare_memory_conditioned_features`. For the query frame at position t it
reads at most `num_maskmem` earlier entries: the previous frame t-1 and up to `num_maskmem - 1` frames
on a grid of stride `mem_stride` below it. Memories carry no temporal position encoding and there are no
object pointers; a frame whose `[SEG]` token was not generated writes nothing, and later reads skip it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from glus_cli.protocol import MEM_STRIDE, NUM_MASKMEM


def memory_read_positions(
    position: int, num_maskmem: int = NUM_MASKMEM, mem_stride: int = MEM_STRIDE
) -> list[int]:
    """Query positions whose memories the frame at `position` reads, oldest first.

    For t_rel = num_maskmem, ..., 1 (the official loop), t_rel = 1 reads `position - 1` and every other
    t_rel reads `((position - 2) // r) * r - (t_rel - 2) * r` (floor division); negative positions are
    skipped. Examples with the defaults (7, 3): 3 -> [0, 2], 5 -> [0, 3, 4], 20 -> [3, 6, ..., 18, 19].
    """
    positions = []
    for t_rel in range(num_maskmem, 0, -1):
        if t_rel == 1:
            read = position - 1
        else:
            read = ((position - 2) // mem_stride) * mem_stride - (t_rel - 2) * mem_stride
        if read >= 0:
            positions.append(read)
    return positions


@dataclass
class MemoryEntry:
    """One frame's memory: SAM2 memory-encoder output and its sine position encoding.

    Both tensors are (1, C_mem, 64, 64) for the 1024-pixel SAM2 (C_mem = 64 for hiera-L).
    """

    features: torch.Tensor
    pos_enc: torch.Tensor


@dataclass
class MemoryReadout:
    """Memories concatenated along the token axis, in the (HW * frames, 1, C_mem) layout SAM2 expects."""

    memory: torch.Tensor
    memory_pos: torch.Tensor
    positions: list[int]


class MemoryBank:
    """Memories of one query pass, keyed by query position.

    Cleared when a pass starts. `discard_unreadable(next_position)` drops entries that no later read can
    reach, so a long video keeps at most `num_maskmem` entries alive.
    """

    def __init__(self, num_maskmem: int = NUM_MASKMEM, mem_stride: int = MEM_STRIDE) -> None:
        if num_maskmem < 1 or mem_stride < 1:
            raise ValueError("num_maskmem and mem_stride must be positive")
        self.num_maskmem = num_maskmem
        self.mem_stride = mem_stride
        self._entries: dict[int, MemoryEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, position: int) -> bool:
        return position in self._entries

    def positions(self) -> list[int]:
        """Positions currently stored, ascending."""
        return sorted(self._entries)

    def clear(self) -> None:
        """Forget every memory (a new expression or a new pass)."""
        self._entries.clear()

    def write(self, position: int, entry: MemoryEntry) -> None:
        """Store the memory of the frame at query position `position`."""
        self._entries[position] = entry

    def read(self, position: int) -> MemoryReadout | None:
        """Memories for the frame at `position`, or None when none of the positions it reads is stored."""
        positions = [
            p for p in memory_read_positions(position, self.num_maskmem, self.mem_stride) if p in self
        ]
        if not positions:
            return None
        # (1, C, H, W) -> (HW, 1, C) per frame, concatenated over frames (oldest first).
        memory = torch.cat([self._entries[p].features.flatten(2).permute(2, 0, 1) for p in positions])
        memory_pos = torch.cat([self._entries[p].pos_enc.flatten(2).permute(2, 0, 1) for p in positions])
        return MemoryReadout(memory=memory, memory_pos=memory_pos, positions=positions)

    def discard_unreadable(self, next_position: int) -> None:
        """Drop entries that no query position >= `next_position` will read.

        A later position t reads t - 1 (>= next_position - 1) and, when `num_maskmem` > 1, multiples of
        the stride from `((t - 2) // r) * r - (num_maskmem - 2) * r` up; that lower bound never decreases
        with t. Every other entry is dead, so a pruned bank holds at most `num_maskmem` entries.
        """
        stride = self.mem_stride
        if self.num_maskmem > 1:
            oldest_grid = ((max(next_position, 2) - 2) // stride - (self.num_maskmem - 2)) * stride
        else:
            oldest_grid = None  # only t - 1 is ever read
        for position in list(self._entries):
            on_grid = oldest_grid is not None and position % stride == 0 and position >= oldest_grid
            if position < next_position - 1 and not on_grid:
                del self._entries[position]
