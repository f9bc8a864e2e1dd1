# SGD with poly decay for 20k iterations, as in MMSegmentation.
_base_ = ['mmseg::_base_/schedules/schedule_20k.py']
