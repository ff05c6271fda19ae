// The native copier if it was built at install time (see install.cjs), else null.
'use strict';
let binding = null;
try {
  binding = require('./build/Release/osvb_native.node');
} catch {
  binding = null;
}
module.exports = { native: binding };
