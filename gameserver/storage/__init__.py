"""Where apps (and later scripts, leaderboards, replays) are kept."""

from gameserver.storage.base import App, AppStore, NewApp
from gameserver.storage.sqlite import SqliteAppStore

__all__ = ["App", "AppStore", "NewApp", "SqliteAppStore"]
