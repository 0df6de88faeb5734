"""Build-time model optimization, as the manifest declares it (`[[models]] optimize = {...}`).

The schema lives here, beside the run-time library, because the manifest is parsed at run time too; the work
(quantization, offline graph optimization, the accuracy gate) is deploy-time code in `inferstack_infra.optimize`.
"""
