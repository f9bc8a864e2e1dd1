# Protocol 'ovseg-r101c' (OVSeg R-101c, released model) on ovshapes: protocol 'ovseg' as it
# is. Not a benchmark of the released evaluation: OVShapes' scenes are evaluated at their own
# size (64 x 64, no resize), as in every OVShapes protocol.
_base_ = ['../ovseg/ovshapes.py']
