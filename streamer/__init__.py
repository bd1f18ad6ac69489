"""The running stream: sources -> engine -> temporal smoother -> sinks.

`streamer` knows nothing of how the network is computed; it talks to an `engines` Engine.
"""
