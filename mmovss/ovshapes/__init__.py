"""OVShapes: an offline open-vocabulary world (see docs and configs/ovshapes)."""
