"""`avatar-pose-editor`: edit emotion templates on a character and export every emotion as a sprite.

``model`` holds the state and the actions (no GUI), ``render`` and ``worker`` turn states into pixels off the GUI
thread, ``batch`` and ``loops`` export, ``app`` is the DearPyGui window, ``__main__`` the command line.
"""
