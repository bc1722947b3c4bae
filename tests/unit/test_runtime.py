"""gochat_project.ops.runtime: the startup objects leave the collector's sight."""

import gc

from gochat_project.ops.runtime import freeze_startup_objects


def test_freeze_startup_objects_moves_what_exists_to_the_permanent_generation() -> None:
    long_lived = [[i] for i in range(1000)]
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() >= len(long_lived)
        walked = {id(o) for generation in range(3) for o in gc.get_objects(generation=generation)}
        assert not any(id(item) in walked for item in long_lived)
    finally:
        gc.unfreeze()
