"""GALRec's building blocks, each a module of its own: the language-model backbone (:mod:`.backbone`; where it
loads from, :mod:`.backbone_source`; how a loaded model is shaped and tuned, :mod:`.backbone_setup`), prompt
assembly (:mod:`.prompt`), soft tokens (:mod:`.tokens`), the InfoNCE loss (:mod:`.losses`), the contrastive terms
(:mod:`.contrast`), the MoCo key queue (:mod:`.queue`) and momentum copy (:mod:`.moco`), the running centring of
the language model's query (:mod:`.centre`), the states the model's
passes hand each other (:mod:`.states`) and parameter counts and trainable-only state dicts (:mod:`.parameters`);
each item's text as one vector of a frozen encoder (:mod:`.text_encoder`) and those vectors projected to an
item table (:mod:`.text_projection`, SASRecText's start). They know no RecBole run: the model class
(:mod:`recbole_galrec.model.galrec`) and the run's preparation (:mod:`recbole_galrec.running.model_inputs`) tie
them."""
