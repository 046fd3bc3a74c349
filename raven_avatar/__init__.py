"""raven_avatar: live, talking anime avatars from one image with the THA3 neural poser."""

__version__ = "0.1.0"
