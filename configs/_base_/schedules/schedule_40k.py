# SGD with poly decay for 40k iterations, as in MMSegmentation.
_base_ = ['mmseg::_base_/schedules/schedule_40k.py']
