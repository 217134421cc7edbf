"""The NetParameter before a Net is built from it, as Caffe's Net::Init prepares it: read and
upgraded (``load_net_param``), filtered by the net state's include/exclude rules (Caffe's
FilterNet and StateMeetsRule), and given Split layers where a blob feeds several layers
(Caffe's InsertSplits, with its names)."""
from npcaffe import formats
from npcaffe.errors import NetError
from npcaffe.proto import caffe_pb2
from npcaffe.upgrade import upgrade_net


def load_net_param(source):
    """A NetParameter from a prototxt path or a NetParameter; upgraded to the V2 format."""
    if isinstance(source, caffe_pb2.NetParameter):
        param = caffe_pb2.NetParameter()
        param.CopyFrom(source)
        where = f"net {param.name!r}" if param.name else 'net'
    else:
        where = str(source)
        param = formats.read_text(source, caffe_pb2.NetParameter())
    return upgrade_net(param, where), where


def state_meets_rule(state, rule):
    """Caffe's StateMeetsRule: does the NetState satisfy the NetStateRule?"""
    if rule.HasField('phase') and rule.phase != state.phase:
        return False
    if rule.HasField('min_level') and state.level < rule.min_level:
        return False
    if rule.HasField('max_level') and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    if any(s not in stages for s in rule.stage):
        return False
    return not any(s in stages for s in rule.not_stage)


def filter_net(param, state, where='net'):
    """A copy of ``param`` holding only the layers whose rules the state meets."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    out.ClearField('layer')
    for layer in param.layer:
        if layer.include and layer.exclude:
            raise NetError(f"{where}: layer {layer.name!r} specifies both include and exclude "
                           f"rules; use one of them")
        if layer.include:
            keep = any(state_meets_rule(state, r) for r in layer.include)
        else:
            keep = not any(state_meets_rule(state, r) for r in layer.exclude)
        if keep:
            out.layer.add().CopyFrom(layer)
    return out


def split_layer_name(layer_name, blob_name, top_index):
    return f"{blob_name}_{layer_name}_{top_index}_split"


def split_blob_name(layer_name, blob_name, top_index, split_index):
    return f"{blob_name}_{layer_name}_{top_index}_split_{split_index}"


def insert_splits(param):
    """Caffe's InsertSplits: a Split layer after every top read by more than one bottom (an
    explicit non-zero loss_weight on the top counts as one more reader)."""
    last_producer = {}            # blob name -> (layer index, top index)
    readers = {}                  # (layer, top) -> number of readers
    loss_weights = {}             # (layer, top) -> explicit loss weight
    reader_of = {}                # (layer, bottom index) -> (layer, top) it reads
    for i, layer in enumerate(param.layer):
        for j, name in enumerate(layer.bottom):
            if name not in last_producer:
                continue  # reported by Net when it connects the bottoms
            src = last_producer[name]
            reader_of[(i, j)] = src
            readers[src] = readers.get(src, 0) + 1
        for j, name in enumerate(layer.top):
            last_producer[name] = (i, j)
        for j, weight in enumerate(layer.loss_weight[:len(layer.top)]):
            src = last_producer[layer.top[j]]
            loss_weights[src] = weight
            if weight:
                readers[src] = readers.get(src, 0) + 1
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    out.ClearField('layer')
    next_split = {}               # (layer, top) -> next split top index to hand out
    for i, layer in enumerate(param.layer):
        new = out.layer.add()
        new.CopyFrom(layer)
        for j in range(len(layer.bottom)):
            src = reader_of.get((i, j))
            if src is not None and readers[src] > 1:
                producer = param.layer[src[0]]
                k = next_split.get(src, 0)
                new.bottom[j] = split_blob_name(producer.name, producer.top[src[1]], src[1], k)
                next_split[src] = k + 1
        for j, name in enumerate(layer.top):
            count = readers.get((i, j), 0)
            if count <= 1:
                continue
            weight = loss_weights.get((i, j), 0)
            split = out.layer.add(name=split_layer_name(layer.name, name, j), type='Split')
            split.bottom.append(name)
            for k in range(count):
                split.top.append(split_blob_name(layer.name, name, j, k))
                if weight:
                    split.loss_weight.append(weight if k == 0 else 0)
            if weight:
                new.ClearField('loss_weight')
                next_split[(i, j)] = 1
    return out
