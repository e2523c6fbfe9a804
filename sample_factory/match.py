"""`python -m sample_factory.match`: only re-exports the match command, whose home is
`sample_factory/league/match.py`, and runs it."""

from __future__ import annotations

import sys

from sample_factory.league.match import MatchResult, add_match_args, main, play_games, play_match

__all__ = ["MatchResult", "add_match_args", "main", "play_games", "play_match"]

if __name__ == "__main__":
    sys.exit(main())
