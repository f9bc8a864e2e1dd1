# SGD with poly decay for 80k iterations, as in MMSegmentation.
_base_ = ['mmseg::_base_/schedules/schedule_80k.py']
