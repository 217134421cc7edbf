"""The registry behind layer and solver types: loud on duplicates, helpful on unknown names."""
import pytest

import npcaffe
from npcaffe.registry import Registry


def test_register_sets_type_and_refuses_twice_and_wrong_bases():
    reg = Registry('thing', base=dict)

    @reg.register('Box')
    class Box(dict):
        pass

    assert Box.type == 'Box' and reg.get('Box') is Box and reg.get('box') is None
    with pytest.raises(ValueError, match="thing 'Box' is registered twice"):
        reg.register('Box')(type('Other', (dict,), {}))
    with pytest.raises(TypeError, match='not a dict subclass'):
        reg.register('List')(list)
    assert reg.names() == ['Box']


def test_unknown_names_get_suggestions_case_first():
    reg = Registry('solver type')
    for name in ('SGD', 'Adam', 'AdaGrad', 'AdaDelta'):
        reg.register(name)(type(name, (), {}))
    assert reg.suggestions('adam')[0] == 'Adam'
    assert reg.unknown('SDG') == ("unknown solver type 'SDG'. Did you mean 'SGD'? "
                                  "Known: AdaDelta, AdaGrad, Adam, SGD")


def test_layer_and_solver_types_are_listed():
    assert {'Convolution', 'Deconvolution', 'Crop', 'SoftmaxWithLoss'} <= set(
        npcaffe.layer_type_list())
    assert npcaffe.solver_type_list() == ['AdaDelta', 'AdaGrad', 'Adam', 'Nesterov', 'RMSProp',
                                          'SGD']
