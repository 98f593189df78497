"""Stage graphs made of runs: commands that train, load and combine finished runs."""
