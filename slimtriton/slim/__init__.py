"""The TF-Slim front end: `from slimtriton import slim`.

Same names, signatures, defaults and variable names as tf_slim; layers record nodes
into the current `slimtriton.Graph` (see slimtriton/slim/layers.py).
"""
from . import arg_scope as _arg_scope_module
from . import initializers, layers, model_analyzer, regularizers, utils
from . import scopes as variables
from .arg_scope import (add_arg_scope, arg_scope, arg_scope_func_key, arg_scoped_arguments, current_arg_scope,
                        has_arg_scope)
from .initializers import (constant_initializer, ones_initializer, random_normal_initializer,
                           random_uniform_initializer, truncated_normal_initializer, variance_scaling_initializer,
                           xavier_initializer, xavier_initializer_conv2d, zeros_initializer)
from .layers import (avg_pool2d, batch_norm, bias_add, conv2d, conv2d_in_plane, conv2d_transpose, convolution,
                     convolution2d, convolution2d_in_plane, convolution2d_transpose, dropout, flatten,
                     fully_connected, linear, max_pool2d, one_hot_encoding, relu, relu6, repeat, separable_conv2d,
                     separable_convolution2d, softmax, stack, unit_norm)
from .regularizers import (apply_regularization, l1_l2_regularizer, l1_regularizer, l2_regularizer,
                           regularization_losses, sum_regularizer)
from .scopes import (AUTO_REUSE, GraphKeys, VariableScope, add_model_variable, get_local_variables,
                     get_model_variables, get_trainable_variables, get_unique_variable, get_variable,
                     get_variable_scope, get_variables, get_variables_by_name, get_variables_by_suffix,
                     get_variables_to_restore, model_variable, name_scope, variable, variable_scope)

__all__ = [
    "add_arg_scope", "arg_scope", "arg_scope_func_key", "arg_scoped_arguments", "current_arg_scope", "has_arg_scope",
    "constant_initializer", "ones_initializer", "random_normal_initializer", "random_uniform_initializer",
    "truncated_normal_initializer", "variance_scaling_initializer", "xavier_initializer",
    "xavier_initializer_conv2d", "zeros_initializer",
    "avg_pool2d", "batch_norm", "bias_add", "conv2d", "conv2d_in_plane", "conv2d_transpose", "convolution",
    "convolution2d", "convolution2d_in_plane", "convolution2d_transpose", "dropout", "flatten", "fully_connected",
    "linear", "max_pool2d", "one_hot_encoding", "relu", "relu6", "repeat", "separable_conv2d",
    "separable_convolution2d", "softmax", "stack", "unit_norm",
    "apply_regularization", "l1_l2_regularizer", "l1_regularizer", "l2_regularizer", "regularization_losses",
    "sum_regularizer",
    "AUTO_REUSE", "GraphKeys", "VariableScope", "add_model_variable", "get_local_variables", "get_model_variables",
    "get_trainable_variables", "get_unique_variable", "get_variable", "get_variable_scope", "get_variables",
    "get_variables_by_name", "get_variables_by_suffix", "get_variables_to_restore", "model_variable", "name_scope",
    "variable", "variable_scope",
    "initializers", "layers", "model_analyzer", "regularizers", "utils", "variables",
]
