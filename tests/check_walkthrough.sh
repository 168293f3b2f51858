#!/usr/bin/env bash
# check_walkthrough.sh - run by `make test`: the fast subset of TUTORIAL.md's
# walked commands (the blocks marked "fast", a few seconds each), in this
# tree, already built. `make walkthrough` runs them all in a scratch clone;
# scripts/walkthrough.sh says how the blocks are marked and run.
set -u
cd "$(dirname "$0")/.." || exit 1
WALK_FAST=1 WALK_IN_PLACE=1 exec scripts/walkthrough.sh
