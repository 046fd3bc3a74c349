"""DearPyGui helpers shared by the apps: image view (``texture``), modal and file dialogs (``dialogs``), the hotkey
table (``hotkeys``) and its F1 card (``helpcard``), file drop (``filedrop``), theme and layout arithmetic."""
