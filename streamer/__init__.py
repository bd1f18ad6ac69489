"""The running stream: sources/ -> stylize.py (engine + temporal/) -> sinks/, moved by loop.py; app/ builds it.

`streamer` knows nothing of how the network is computed; it talks to an `engines` Engine. The map:
docs/design.md.
"""

# OpenCV before PyAV, always. Both wheels bundle libxcb-shm, -shape and -xfixes under the same hashed
# file names, each linked to a different libxcb; the first to load wins. When PyAV's load first, the
# preview window (OpenCV's Qt) hangs on its first call (opencv-python 5.0 + av 18 on Linux).
import cv2  # noqa: F401
