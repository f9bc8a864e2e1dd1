# PAS-20b: PASCAL VOC 2012 val with background, 21 classes, as CAT-Seg evaluates it
# (eval.sh "Pascal VOC-b": datasets/voc20b.json on voc_2012_test_background_sem_seg).
# VOC-21's images, labels (0 = background) and metric (mIoU over the 21 labels, background
# included); the background is named by 39 names (PASCAL Context classes that are not VOC
# classes), and a prediction on any of them is background (configs/catseg/README.md).
# Vocabulary: mmovss/vocab/names/voc20b.txt (21 classes; class 0 has the 39 names).
# Everything but the dataset type (which reads the vocabulary above) is VOC-21's base:
# layout, data_root and their overrides as there.
_base_ = ['./voc21.py']
dataset_type = 'PascalVOC20bDataset'
val_dataloader = dict(dataset=dict(type=dataset_type))
test_dataloader = val_dataloader
