"""Units of memory, and the GPU card sizes ftkit compares against (any part may import these)."""

GIB = 1024**3  # what PyTorch's allocator and nvidia-smi's MiB columns count in
GB = 10**9  # how cards are sold: an "80 GB" card holds 80e9 bytes (74.5 GiB)
CARDS_GB = (8, 12, 16, 24, 40, 48, 80, 96, 141)


def gib(n: int) -> str:
    return f"{n / GIB:8.2f} GiB"
