//! Replay of recorded curves through a pruner (issue 2). OWNER: pruners engineer.
