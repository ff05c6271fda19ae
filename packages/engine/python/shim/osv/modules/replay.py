# Partial evaluation. A full evaluation records, for every module whose module.py ran, what
# running it did to the evaluation -- in order: the requires it made, run configurations it
# selected, conditional requires it registered, run_on_init numbers it took, and every attribute
# of another module it read (with the value's digest) -- plus its own attributes at the end.
# The next evaluation may *replay* such a module instead of running its module.py again, when
# the engine found every read of it unchanged: the same calls are made in the same order, so the
# shared state (loaded table, require order, run table, conditional requires, run_on_init
# numbering) comes out exactly as if it ran. An attribute read it made is checked on the way:
# a module that ran again and now gives another value makes the replay impossible, and the
# whole evaluation is made again in full (NeedFull). Replayed modules answer plain-data
# attributes (numbers, strings, lists, dicts, tuples) and run configurations from the record;
# any other attribute read by module.py code also falls back to a full evaluation.
import json


class NeedFull(Exception):
    """A partial evaluation cannot go on: the worker evaluates everything again."""


MISSING = '<missing>'
_MAX_PLAIN = 65536


def encode_plain(v, depth=0):
    """Tagged JSON for plain data; raises ValueError for anything else."""
    if depth > 20:
        raise ValueError('too deep')
    if v is None:
        return ['n']
    t = type(v)
    if t is bool:
        return ['b', v]
    if t is int:
        return ['i', str(v)]
    if t is float:
        return ['f', repr(v)]
    if t is str:
        return ['s', v]
    if t is list:
        return ['l', [encode_plain(x, depth + 1) for x in v]]
    if t is tuple:
        return ['t', [encode_plain(x, depth + 1) for x in v]]
    if t is dict:
        items = []
        for k, x in v.items():
            if type(k) is not str:
                raise ValueError('non-string key')
            items.append([k, encode_plain(x, depth + 1)])
        return ['d', items]
    raise ValueError('not plain data')


def decode_plain(e):
    tag = e[0]
    if tag == 'n':
        return None
    if tag == 'b':
        return e[1]
    if tag == 'i':
        return int(e[1])
    if tag == 'f':
        return float(e[1])
    if tag == 's':
        return e[1]
    if tag == 'l':
        return [decode_plain(x) for x in e[1]]
    if tag == 't':
        return tuple(decode_plain(x) for x in e[1])
    if tag == 'd':
        return dict((k, decode_plain(x)) for k, x in e[1])
    raise ValueError('bad plain record')


def plain_digest(v):
    """The digest an attribute read is checked by: its plain encoding, or None (not plain data)."""
    try:
        text = json.dumps(encode_plain(v), separators=(',', ':'))
    except (ValueError, RecursionError):
        return None
    return text if len(text) <= _MAX_PLAIN else None


def encode_app(v):
    """A run configuration (api objects of the exact api classes, and lists of them) as data; raises ValueError otherwise."""
    from osv.modules import api
    if isinstance(v, list):
        return {'t': 'list', 'items': [encode_app(x) for x in v]}
    t = type(v)
    if t is api.run:
        return {'t': 'run', 'cmdline': encode_plain(v.cmdline)}
    if t is api.run_on_init:
        return {'t': 'init', 'cmdline': encode_plain(v.cmdline), 'sequence': v.sequence}
    if t is api.run_java:
        return {'t': 'java', 'args': encode_plain(v.args), 'classpath': encode_plain(v.classpath), 'jvm_args': encode_plain(v.jvm_args)}
    if t is api.delayed:
        return {'t': 'delayed', 'app': encode_app(v.app), 'delay': encode_plain(v.delay)}
    raise ValueError('not a run configuration')


def decode_app(e):
    """Rebuild a run configuration without running constructors (their effects were replayed)."""
    from osv.modules import api
    t = e['t']
    if t == 'list':
        return [decode_app(x) for x in e['items']]
    if t == 'run':
        o = object.__new__(api.run)
        o.cmdline = decode_plain(e['cmdline'])
    elif t == 'init':
        o = object.__new__(api.run_on_init)
        o.cmdline = decode_plain(e['cmdline'])
        o.sequence = e['sequence']
    elif t == 'java':
        o = object.__new__(api.run_java)
        o.args = decode_plain(e['args'])
        o.classpath = decode_plain(e['classpath'])
        o.jvm_args = decode_plain(e['jvm_args'])
    elif t == 'delayed':
        o = object.__new__(api.delayed)
        o.app = decode_app(e['app'])
        o.delay = decode_plain(e['delay'])
    else:
        raise ValueError('bad app record')
    return o


def module_record(properties):
    """A module's attributes at the end of an evaluation: plain data, run configurations, names of the rest."""
    plain = {}
    apps = {}
    other = []
    for k, v in properties.items():
        try:
            plain[k] = encode_plain(v)
            continue
        except (ValueError, RecursionError):
            pass
        try:
            apps[k] = encode_app(v)
            continue
        except (ValueError, RecursionError, AttributeError):
            pass
        other.append(k)
    return {'plain': plain, 'apps': apps, 'other': sorted(other)}


class ReplayedProperties(object):
    """A replayed module's attributes: answered from its record, as far as a record can."""

    def __init__(self, rec):
        self.rec = rec
        self.cache = {}

    def has(self, attr):
        r = self.rec
        return attr in r['plain'] or attr in r['apps'] or attr in r['other']

    def get(self, attr, worker):
        r = self.rec
        if attr in self.cache:
            return self.cache[attr]
        if attr in r['plain']:
            v = decode_plain(r['plain'][attr])
        elif attr in r['apps']:
            v = decode_app(r['apps'][attr])
        elif attr in r['other']:
            if not worker:
                raise NeedFull('module.py code read attribute %s of a module that was not run again' % attr)
            raise NeedFull('attribute %s is not replayable' % attr)
        else:
            raise AttributeError(attr)
        self.cache[attr] = v
        return v

    def digest(self, attr):
        """The digest a read of `attr` has (as plain_digest gives it), without rebuilding anything."""
        r = self.rec
        if attr in r['plain']:
            text = json.dumps(r['plain'][attr], separators=(',', ':'))
            return text if len(text) <= _MAX_PLAIN else None
        if attr in r['apps'] or attr in r['other']:
            return None
        return MISSING
