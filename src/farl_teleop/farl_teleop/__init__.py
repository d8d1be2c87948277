"""SpaceMouse and keyboard teleoperation and demo labelling; the teleop node (a later issue fills it)."""
