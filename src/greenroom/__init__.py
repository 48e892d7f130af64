"""Greenroom: server-side background replacement for real-time AI avatars in LiveKit rooms.

Folders, one concern each, data flowing one way (provider -> compositor -> room):

- ``keying``: pure frame maths (keyers, despill, compositing, metrics).
- ``backgrounds``: background sources (colour, image, video loop, blur).
- ``avatars``: avatar providers (built-in local avatar, file, vendors, attach).
- ``compositor``: the LiveKit participant that keys and republishes.
- ``emulators``: offline stand-ins for the vendors' HTTP APIs.
- ``api`` and ``store``: the HTTP service and its database.
- ``web``: the viewer page.
"""

__version__ = "0.1.0"
