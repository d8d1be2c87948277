"""Camera sources, object detection and 3-D estimation; the perception node (a later issue fills it)."""
