"""BirdCLEF specifics: label space and targets (:mod:`.labels`), submissions (:mod:`.submission`)."""

from embedkit.birdclef.labels import (
    REQUIRED_TRAIN,
    DataError,
    TargetReport,
    build_targets,
    load_labels,
    load_train,
    parse_secondary,
)
from embedkit.birdclef.submission import (
    check_labels,
    check_row_stems,
    expected_row_ids,
    load_labels_from_sample,
    soundscape_row_ids,
    submission_labels,
    validate_submission,
    write_submission,
)

__all__ = [
    "REQUIRED_TRAIN",
    "DataError",
    "TargetReport",
    "build_targets",
    "check_labels",
    "check_row_stems",
    "expected_row_ids",
    "load_labels",
    "load_labels_from_sample",
    "load_train",
    "parse_secondary",
    "soundscape_row_ids",
    "submission_labels",
    "validate_submission",
    "write_submission",
]
