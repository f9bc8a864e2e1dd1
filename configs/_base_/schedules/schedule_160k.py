# SGD with poly decay for 160k iterations, as in MMSegmentation.
_base_ = ['mmseg::_base_/schedules/schedule_160k.py']
