"""``python scripts/benchmark.py ...`` is ``fastnst bench ...`` (the benchmark lives in :mod:`fastnst.bench`)."""

from fastnst.bench import main

if __name__ == "__main__":
    main()
