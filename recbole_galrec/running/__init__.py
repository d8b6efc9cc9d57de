"""What a run does around the model: its steps (:mod:`.steps`: data, model, trainer), the model's inputs prepared
before it is built (:mod:`.model_inputs`), the trainer (:mod:`.trainer`), checkpoints (:mod:`.checkpoints`),
per-user test metrics (:mod:`.per_user`), several processes of one run (:mod:`.distributed`), the run's progress
events (:mod:`.progress`), its result (:mod:`.result`) and files written whole (:mod:`.files`).
:mod:`recbole_galrec.quick_start` puts them in order."""
