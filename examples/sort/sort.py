"""Sort a list of integers, as fast as possible.

The editable half of the sort study. The fixed half, evaluate.py, calls
``sort`` in a separate sandboxed process (never importing this file into its
own), checks every answer against the right one and times it on fixed
inputs of several sizes and shapes. The metric is the time per element.

The baseline is a plain top-down merge sort that hands short runs to
insertion sort. It is deliberately simple: there is room to improve.
Python's own sorted() and list.sort() are off limits (see program.md).
"""

CUTOFF = 6  # runs shorter than this are insertion-sorted instead of split further


def insertion_sort(values: list[int], lo: int, hi: int) -> None:
    """Sort values[lo:hi] in place by insertion."""
    for i in range(lo + 1, hi):
        item = values[i]
        j = i - 1
        while j >= lo and values[j] > item:
            values[j + 1] = values[j]
            j -= 1
        values[j + 1] = item


def merge(left: list[int], right: list[int]) -> list[int]:
    """Merge two sorted lists into one sorted list."""
    out = []
    i = j = 0
    while i < len(left) and j < len(right):
        if right[j] < left[i]:
            out.append(right[j])
            j += 1
        else:
            out.append(left[i])
            i += 1
    out.extend(left[i:])
    out.extend(right[j:])
    return out


def sort(values: list[int]) -> list[int]:
    """A new list holding ``values`` in ascending order."""
    if len(values) < CUTOFF:
        result = list(values)
        insertion_sort(result, 0, len(result))
        return result
    middle = len(values) // 2
    return merge(sort(values[:middle]), sort(values[middle:]))
