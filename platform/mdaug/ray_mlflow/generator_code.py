"""The registered generator's model code (MLflow models-from-code): logged as the model's python_model, executed
when the model loads; the mdaug package travels with the model as its code path. Imports neither ray nor the
training stack beyond what sampling needs."""

import mlflow

from mdaug.ray_mlflow.generator_model import GeneratorModel

mlflow.models.set_model(GeneratorModel())
