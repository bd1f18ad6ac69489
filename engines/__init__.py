"""The network and everything that runs it: encoder, AdaIN, decoder, backends, export, training.

`engines` never imports `streamer`.
"""
