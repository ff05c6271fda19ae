# libgreet has no run configuration: it is a library that other modules
# require (apps/hello links against it).
from osv.modules import api

version = '1.0'
