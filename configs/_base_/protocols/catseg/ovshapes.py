# Protocol 'catseg' (CAT-Seg as released by its authors) on ovshapes: not evaluated by the
# released code (eval.sh evaluates ade20k_150, ade20k_847, voc20, voc20b (PAS-20b),
# pascal_context_59, pascal_context_459). mmovss's choice: the benchmark's class names
# (vocabulary=None, DatasetVocabularyHook) and test pipeline, as the default protocol.
_base_ = [
    '../../datasets/ovshapes.py', '../../default_runtime.py',
    '../../schedules/inference_only.py'
]
train_dataloader = None
# Only the first name of each class is embedded (get_text_embeds: synonyms='first'; set by
# every base of the family, voc20b.py embeds all of its background names).
protocol_model = dict(
    vocabulary=None,
    text_encoder=dict(synonyms='first'))
