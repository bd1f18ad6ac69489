"""The lite network: a small arbitrary-style network for real time on a CPU (no VGG on the per-frame path)."""
