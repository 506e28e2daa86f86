"""plait: a hardware/software co-design compiler for LLMs on FPGAs.

Layers (imports point down): frontend -> ir <- passes -> rtl / hls -> runtime -> sim.
See DESIGN.md in the shared folder and README.md.
"""
__version__ = "0.1.0"
