"""The kiosk's life as a service: start on the config (or wait on the screen for a fixed one), run
pipeline after pipeline as SIGHUP reloads come, stop within the 2 s systemd is promised, and the
bundled demo when there is no camera. `kiosk.Appliance` is `ventriloquist run`."""
