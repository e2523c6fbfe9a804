"""`python -m sample_factory.league`: the league table (`league/ratings.py`)."""

import sys

from sample_factory.league.ratings import main

if __name__ == "__main__":
    sys.exit(main())
