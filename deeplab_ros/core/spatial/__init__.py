"""Labels in 3D: depth back-projection, labelled point arrays and per-class regions."""
