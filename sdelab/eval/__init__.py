"""How edits and samples are scored, in one place: the digits judge and its feature maps (``judge``), the shapes
judge's scores and feature map (``shapes``), the Frechet distance (``frechet``), the classifier two-sample test
(``c2st``), bootstrap intervals and paired differences (``bootstrap``), and the one markdown table formatter
(``tables``). Conventions: docs/conventions.md, "Scores"."""
