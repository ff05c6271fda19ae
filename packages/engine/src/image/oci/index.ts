export {
  writeOciLayout,
  OCI_LAYER_TAR,
  OCI_MANIFEST,
  OCI_INDEX,
  OCI_CONFIG,
  type OciLayerInput,
  type OciLayoutOptions,
  type OciLayerResult,
  type OciLayoutResult,
} from './oci.js';
