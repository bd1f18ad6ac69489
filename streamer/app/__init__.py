"""The application around the stream: the command line (cli), the YAML config (config), building and
running a stream from it (run), the image command (images_cmd), the demo and its clip, output naming
(paths). Nothing below streamer/ imports from here."""
