export {
  exportManifest,
  planExport,
  exportRelPath,
  defaultExportRecordFile,
  type ExportOptions,
  type ExportNode,
  type ExportPlan,
  type ExportResult,
} from './export.js';
