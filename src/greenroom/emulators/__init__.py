"""Local emulators of the LiveAvatar and HeyGen Streaming APIs, backed by Greenroom's built-in
avatar, so apps (and the vendors' own clients) can be built and tested with no account.

``greenroom emulate liveavatar|heygen`` serves them; tests use ``create_app`` directly.
"""
