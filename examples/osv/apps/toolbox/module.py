# Files added with a FileMap instead of a usr.manifest. FileMap host paths
# must be absolute; ${OSV_BASE} is expanded from the environment.
from osv.modules.filemap import FileMap

_module = '${OSV_BASE}/apps/toolbox'

usr_files = FileMap()

# Walk share/ and keep the top-level *.sh scripts plus everything below lib/,
# except the test helpers. With at least one include() a file starts out
# excluded; every matching filter then decides, the last match wins.
usr_files.add(_module + '/share').to('/usr/share/toolbox') \
    .include('*.sh') \
    .include('lib/**') \
    .exclude('lib/test_*')

# A single file under a different guest name.
usr_files.add(_module + '/toolbox.conf').to('/etc/toolbox.conf')

# A guest symlink.
usr_files.link('/usr/bin/toolbox').to('/usr/share/toolbox/toolbox.sh')
