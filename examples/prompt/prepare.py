"""Prepare the prompt study once: de-quantize the model and cache it (about 15 s).

Run it before the first `ratchet run`: `python prepare.py`. Without it the
first evaluation builds the cache itself and may run past its 30 s budget.
It prints where the cache is and checks that the model loads from it.
Nothing here is needed when the study uses an OpenAI-compatible endpoint.
"""

import sys
import time

from smollm import ModelMissing, cached, load


def main() -> None:
    started = time.perf_counter()
    try:
        path = cached()
        load()
    except ModelMissing as exc:
        sys.exit(f"prepare.py: {exc}")
    print(f"model cache: {path} (ready in {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
