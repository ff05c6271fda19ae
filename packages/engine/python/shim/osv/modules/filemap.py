# osv-build's implementation of OSv's FileMap API (osv.modules.filemap). Mappings are recorded
# here (with the module.py line that made them) and expanded by the osvb engine after
# `make module`, when the files exist -- the same moment OSv expands them.
import os
import re
import sys

from osv.modules.resolve import OsvbShimError

_BAD_STARSTAR = re.compile(r'(([^/]\*\*)|(\*\*[^/]))')


def _call_site():
    f = sys._getframe(2)
    return {'file': f.f_code.co_filename, 'line': f.f_lineno}


def _check_pattern(pattern):
    bad = _BAD_STARSTAR.search(pattern)
    if bad:
        raise OsvbShimError('OSVB_FILEMAP',
                            "'**' pattern may only be a in place of a full path component, but found: %s"
                            % bad.group(1))


class FileMap(object):
    def __init__(self):
        self.mappings = []
        self.symlinks = []

    def add(self, host_path, to=None):
        mapping = Mapping(os.path.expandvars(host_path))
        mapping._site = _call_site()
        self.mappings.append(mapping)
        return mapping

    def link(self, guest_path):
        link = SymlinkMapping(guest_path)
        link._site = _call_site()
        self.symlinks.append(link)
        return link


class Mapping(object):
    def __init__(self, host_path):
        if '*' in host_path or '?' in host_path:
            raise OsvbShimError('OSVB_FILEMAP', 'Host path must not be a pattern: ' + host_path)
        self.host_path = host_path
        self.guest_path = None
        self.filters = []
        self._allow_symlink = False
        self._site = None

    def include(self, pattern):
        _check_pattern(pattern)
        self.filters.append((pattern, False))
        return self

    def exclude(self, pattern):
        _check_pattern(pattern)
        self.filters.append((pattern, True))
        return self

    def to(self, guest_path):
        if self.guest_path:
            raise OsvbShimError('OSVB_FILEMAP', 'Already mapped to %s, tried to remap to %s'
                                % (self.guest_path, guest_path))
        self.guest_path = guest_path
        return self

    def allow_symlink(self):
        # Returns nothing, as OSv's does: `.allow_symlink().include(...)` fails there too.
        self._allow_symlink = True


class SymlinkMapping(object):
    def __init__(self, new_path):
        self.new_path = new_path
        self._site = None

    def to(self, old_path):
        self.old_path = old_path


def _serialize(filemap):
    """Plain data for the engine: mappings in add() order, then links in link() order."""
    mappings = []
    for m in filemap.mappings:
        mappings.append({
            'host': m.host_path,
            'guest': m.guest_path if isinstance(m.guest_path, str) else None,
            'filters': [{'pattern': p, 'exclude': ex} for (p, ex) in m.filters],
            'allowSymlink': bool(m._allow_symlink),
            'site': m._site,
        })
    links = []
    for s in filemap.symlinks:
        target = getattr(s, 'old_path', None)
        links.append({
            'guest': s.new_path,
            'target': target if isinstance(target, str) else None,
            'site': s._site,
        })
    return {'mappings': mappings, 'links': links}
