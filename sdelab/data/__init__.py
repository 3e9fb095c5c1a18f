"""What images and edits there are: data sets and their edit cases (no models here)."""
