"""TVM integer kernels vs torch fp32 vs dequantize-then-matmul: ``plait bench kernels``.

    nice .venv/bin/python benchmarks/kernels.py [--shapes 4096x4096,11008x4096]
        [--batches 1,8] [--formats W2A8,W4A8,W8A8,2:4] [--repeat 20] [--no-check]

The measurement lives in :mod:`plait.runtime.bench` (see its docstring).
"""
import sys

from plait.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "kernels", *sys.argv[1:]]))
