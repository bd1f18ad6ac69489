"""The application: the command line (cli) and its commands (run: convert and live, images_cmd, demo).
Nothing below streamer/ imports from here; what the commands share lives beside it (streamer.config,
streamer.pipeline, streamer.convert)."""
