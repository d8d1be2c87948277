"""Risk critics and recovery choice; the safety shield node (issue 3)."""
