// The built-in hardware table: per-array settings multipath-tools 0.9.4 applies when no
// configuration says otherwise, as multipath.conf text that Keel's own loader reads. Options Keel
// does not carry out are kept as comments so the table says what multipathd would do.

extension Configuration {
    /// multipath-tools 0.9.4's hardware table (`devices` entries), in table order: a later entry
    /// wins over an earlier one that also matches, and user `devices` entries win over all of them.
    public static let hardwareTableText = #"""
    devices {
        # Any NVMe namespace (a catch-all; the more specific NVMe entries further down win over it)
        device {
            vendor "NVM[eE]"
            product ".*"
            path_grouping_policy group_by_prio
            path_checker none
            failback immediate
            uid_attribute "ID_WWN"
        }

        # Apple
        device {
            vendor "APPLE"
            product "Xserve RAID"
            path_grouping_policy multibus
        }

        # HPE, with older HP, Compaq and DEC arrays
        device {
            vendor "3PARdata"
            product "VV"
            path_grouping_policy group_by_prio
            prio alua
            hardware_handler "1 alua"
            failback immediate
            no_path_retry 18
            fast_io_fail_tmo 10
            dev_loss_tmo infinity
            # vpd_vendor hp3par (not in Keel)
        }
        device {
            vendor "NVME"
            product "HPE Alletra"
            no_path_retry queue
        }
        device {
            vendor "DEC"
            product "HSG80"
            path_grouping_policy group_by_prio
            path_checker hp_sw
            prio hp_sw
            hardware_handler "1 hp_sw"
            no_path_retry queue
        }
        device {
            vendor "HP"
            product "A6189A"
            path_grouping_policy multibus
            no_path_retry 12
        }
        device {
            vendor "(COMPAQ|HP)"
            product "(MSA|HSV)1[01]0"
            path_grouping_policy group_by_prio
            path_checker hp_sw
            prio hp_sw
            hardware_handler "1 hp_sw"
            no_path_retry 12
        }
        device {
            vendor "(COMPAQ|HP)"
            product "MSA VOLUME"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
            no_path_retry 12
        }
        device {
            vendor "(COMPAQ|HP)"
            product "(HSV1[01]1|HSV2[01]0|HSV3[046]0|HSV4[05]0)"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
            no_path_retry 12
        }
        device {
            vendor "HP"
            product "(MSA2[02]12fc|MSA2012i)"
            path_grouping_policy multibus
            no_path_retry 18
        }
        device {
            vendor "HP"
            product "(MSA2012sa|MSA23(12|24)(fc|i|sa)|MSA2000s VOLUME)"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
            no_path_retry 18
        }
        device {
            vendor "(HP|HPE)"
            product "MSA [12]0[456]0 (SAN|SAS|FC|iSCSI)"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
            no_path_retry 18
        }
        device {
            vendor "HP"
            product "(HSVX700|HSVX740)"
            path_grouping_policy group_by_prio
            prio alua
            hardware_handler "1 alua"
            failback immediate
            no_path_retry 12
        }
        device {
            vendor "HP"
            product "LOGICAL VOLUME"
            path_grouping_policy multibus
            no_path_retry 12
        }
        device {
            vendor "HP"
            product "(P2000 G3 FC|P2000G3 FC/iSCSI|P2000 G3 SAS|P2000 G3 iSCSI)"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
            no_path_retry 18
        }
        device {
            vendor "LEFTHAND"
            product "(P4000|iSCSIDisk|FCDISK)"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
            no_path_retry 18
        }
        device {
            vendor "Nimble"
            product "Server"
            path_grouping_policy group_by_prio
            prio alua
            hardware_handler "1 alua"
            failback immediate
            no_path_retry queue
        }

        # SGI
        device {
            vendor "SGI"
            product "TP9100"
            path_grouping_policy multibus
        }
        device {
            vendor "SGI"
            product "TP9[3457]00"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "SGI"
            product "IS"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "SGI"
            product "^DD[46]A-"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
            no_path_retry 30
        }

        # DataDirect Networks (DDN)
        device {
            vendor "DDN"
            product "SAN DataDirector"
            path_grouping_policy multibus
        }
        device {
            vendor "DDN"
            product "^EF3010"
            path_grouping_policy multibus
            no_path_retry 30
        }
        device {
            vendor "DDN"
            product "^(EF3015|S2A|SFA)"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
            no_path_retry 30
        }

        # Nexenta
        device {
            vendor "NEXENTA"
            product "COMSTAR"
            path_grouping_policy group_by_serial
            no_path_retry 30
        }

        # Tegile
        device {
            vendor "TEGILE"
            product "(ZEBI-(FC|ISCSI)|INTELLIFLASH)"
            path_grouping_policy group_by_prio
            prio alua
            hardware_handler "1 alua"
            failback immediate
            no_path_retry 10
        }

        # Dell EMC (Symmetrix/PowerMax, CLARiiON/VNX/Unity, VPLEX, XtremIO, SC, MD, PowerStore, ME)
        device {
            vendor "EMC"
            product "SYMMETRIX"
            path_grouping_policy multibus
            no_path_retry 6
        }
        device {
            vendor "NVME"
            product "EMC PowerMax"
            no_path_retry queue
        }
        device {
            vendor "^DGC"
            product "^(RAID|DISK|VRAID)"
            product_blacklist "LUNZ"
            path_grouping_policy group_by_prio
            path_checker emc_clariion
            prio emc
            hardware_handler "1 emc"
            failback immediate
            no_path_retry 60
            detect_checker no
        }
        device {
            vendor "EMC"
            product "Invista"
            product_blacklist "LUNZ"
            path_grouping_policy multibus
            no_path_retry 5
        }
        device {
            vendor "XtremIO"
            product "XtremApp"
            path_grouping_policy multibus
        }
        device {
            vendor "COMPELNT"
            product "Compellent Vol"
            path_grouping_policy group_by_prio
            failback immediate
            no_path_retry queue
        }
        device {
            vendor "DELL"
            product "^MD3"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "DellEMC"
            product "PowerStore"
            path_grouping_policy group_by_prio
            prio alua
            hardware_handler "1 alua"
            failback immediate
            no_path_retry 3
            fast_io_fail_tmo 15
        }
        device {
            vendor ".*"
            product "dellemc-powerstore"
            no_path_retry 3
        }
        device {
            vendor "DellEMC"
            product "^ME"
            path_grouping_policy group_by_prio
            prio alua
            hardware_handler "1 alua"
            failback immediate
        }

        # Fujitsu (and Fujitsu Siemens / EuroLogic)
        device {
            vendor "FSC"
            product "CentricStor"
            path_grouping_policy group_by_serial
        }
        device {
            vendor "FUJITSU"
            product "ETERNUS_DX(H|L|M|400|8000)"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
            no_path_retry 10
        }
        device {
            vendor "(EUROLOGC|EuroLogc)"
            product "FC2502"
            path_grouping_policy multibus
        }
        device {
            vendor "FUJITSU"
            product "E[234]000"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
            no_path_retry 10
        }
        device {
            vendor "FUJITSU"
            product "E[68]000"
            path_grouping_policy multibus
            no_path_retry 10
        }
        device {
            vendor "FUJITSU"
            product "ETERNUS_AHB"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }

        # Hitachi Vantara (and the HPE XP arrays built on it)
        device {
            vendor "(HITACHI|HP|HPE)"
            product "^OPEN-"
            path_grouping_policy multibus
        }
        device {
            vendor "HITACHI"
            product "^DF"
            path_grouping_policy group_by_prio
            prio hds
            failback immediate
            no_path_retry queue
        }
        device {
            vendor "HITACHI"
            product "^DF600F"
            path_grouping_policy multibus
        }

        # IBM storage arrays
        device {
            vendor "IBM"
            product "ProFibre 4000R"
            path_grouping_policy multibus
        }
        device {
            vendor "IBM"
            product "^1722-600"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "IBM"
            product "^1724"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "IBM"
            product "^1726"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "IBM"
            product "^1742"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "IBM"
            product "^1746"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "IBM"
            product "^1813"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "IBM"
            product "^1814"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "IBM"
            product "^1815"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "IBM"
            product "^1818"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "IBM"
            product "^3526"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "IBM"
            product "^(3542|3552)"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "IBM"
            product "^2105"
            path_grouping_policy multibus
            no_path_retry queue
        }
        device {
            vendor "IBM"
            product "^1750500"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
            no_path_retry queue
        }
        device {
            vendor "IBM"
            product "^2107900"
            path_grouping_policy group_by_prio
            failback immediate
            no_path_retry queue
        }
        device {
            vendor "IBM"
            product "^2145"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
            no_path_retry queue
        }
        device {
            vendor "NVME"
            product "IBM[ ]+2145"
            no_path_retry queue
        }
        device {
            vendor "IBM"
            product "S/390 DASD ECKD"
            product_blacklist "S/390"
            path_grouping_policy multibus
            path_checker directio
            no_path_retry queue
            # uid_attribute "ID_UID" (not in Keel)
        }
        device {
            vendor "IBM"
            product "S/390 DASD FBA"
            product_blacklist "S/390"
            path_grouping_policy multibus
            path_checker directio
            no_path_retry queue
            # uid_attribute "ID_UID" (not in Keel)
        }
        device {
            vendor "IBM"
            product "^IPR"
            path_grouping_policy group_by_prio
            prio alua
            hardware_handler "1 alua"
            failback immediate
            no_path_retry queue
        }
        device {
            vendor "IBM"
            product "1820N00"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
            no_path_retry queue
        }
        device {
            vendor "(XIV|IBM)"
            product "(NEXTRA|2810XIV)"
            path_grouping_policy group_by_prio
            failback 15
            no_path_retry queue
        }
        device {
            vendor "(TMS|IBM)"
            product "(RamSan|FlashSystem)"
            path_grouping_policy multibus
        }
        device {
            vendor "NVMe"
            product "FlashSystem"
            no_path_retry fail
        }
        device {
            vendor "IBM"
            product "^(DCS9900|2851)"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
            no_path_retry 30
        }

        # IBM Power virtual SCSI devices
        device {
            vendor "AIX"
            product "VDASD"
            path_grouping_policy multibus
            no_path_retry 60
        }
        device {
            vendor "IBM"
            product "3303[ ]+NVDISK"
            no_path_retry 60
        }
        device {
            vendor "AIX"
            product "NVDISK"
            path_grouping_policy group_by_prio
            prio alua
            hardware_handler "1 alua"
            failback immediate
            no_path_retry 60
        }

        # Lenovo
        device {
            vendor "LENOVO"
            product "DE_Series"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }

        # NetApp
        device {
            vendor "NETAPP"
            product "LUN"
            path_grouping_policy group_by_prio
            prio ontap
            features "2 pg_init_retries 50"
            failback immediate
            no_path_retry queue
            flush_on_last_del yes
            dev_loss_tmo infinity
            # user_friendly_names no
        }
        device {
            vendor "(NETAPP|LSI|ENGENIO)"
            product "INF-01-00"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "SolidFir"
            product "SSD SAN"
            path_grouping_policy multibus
            no_path_retry 24
        }
        device {
            vendor "NVME"
            product "^NetApp ONTAP Controller"
            no_path_retry queue
        }

        # NEC
        device {
            vendor "NEC"
            product "DISK ARRAY"
            path_grouping_policy group_by_prio
            prio alua
            hardware_handler "1 alua"
            failback immediate
        }

        # Oracle (Pillar Data / Oracle FS)
        device {
            vendor "^Pillar"
            product "^Axiom"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
        }
        device {
            vendor "^Oracle"
            product "^Oracle FS"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
        }

        # Oracle / Sun StorageTek
        device {
            vendor "STK"
            product "BladeCtlr"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "STK"
            product "OPENstorage"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "STK"
            product "FLEXLINE 380"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "SUN"
            product "StorEdge 3"
            path_grouping_policy multibus
        }
        device {
            vendor "SUN"
            product "STK6580_6780"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "SUN"
            product "CSM[12]00_R"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "SUN"
            product "LCSM100_[IEFS]"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "SUN"
            product "SUN_6180"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "SUN"
            product "ArrayStorage"
            product_blacklist "Universal Xport"
            path_grouping_policy group_by_prio
            path_checker rdac
            prio rdac
            features "2 pg_init_retries 50"
            hardware_handler "1 rdac"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "SUN"
            product "(Sun Storage|ZFS Storage|COMSTAR)"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
            no_path_retry 30
        }

        # Pivot3
        device {
            vendor "PIVOT3"
            product "RAIGE VOLUME"
            path_grouping_policy multibus
            no_path_retry queue
        }
        device {
            vendor "(NexGen|Pivot3)"
            product "(TierStore|vSTAC)"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
            no_path_retry queue
        }

        # Intel
        device {
            vendor "(Intel|INTEL)"
            product "Multi-Flex"
            product_blacklist "VTrak V-LUN"
            path_grouping_policy group_by_prio
            prio alua
            hardware_handler "1 alua"
            failback immediate
            no_path_retry queue
        }

        # Linux-IO (LIO) targets
        device {
            vendor "(LIO-ORG|SUSE)"
            product ".*"
            path_grouping_policy group_by_prio
            prio alua
            hardware_handler "1 alua"
            failback immediate
            no_path_retry 12
        }

        # DataCore
        device {
            vendor "DataCore"
            product "SANmelody"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
            no_path_retry queue
        }
        device {
            vendor "DataCore"
            product "Virtual Disk"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
            no_path_retry queue
        }

        # Pure Storage
        device {
            vendor "PURE"
            product "FlashArray"
            path_grouping_policy group_by_prio
            prio alua
            hardware_handler "1 alua"
            failback immediate
            fast_io_fail_tmo 10
            # max_sectors_kb 4096 (not in Keel)
        }
        device {
            vendor "NVME"
            product "Pure Storage FlashArray"
            no_path_retry 10
        }

        # Huawei
        device {
            vendor "HUAWEI"
            product "XSG1"
            path_grouping_policy group_by_prio
            failback immediate
            no_path_retry 15
        }
        device {
            vendor "NVM[eE]"
            product "Huawei-XSG1"
            path_checker directio
            no_path_retry 12
        }

        # Kove
        device {
            vendor "KOVE"
            product "XPD"
            path_grouping_policy multibus
        }

        # Infinidat
        device {
            vendor "NFINIDAT"
            product "InfiniBox"
            path_grouping_policy group_by_prio
            path_selector "round-robin 0"
            prio alua
            failback 30
            no_path_retry fail
            # rr_weight priorities (not in Keel)
            # rr_min_io 1 (not in Keel)
            # rr_min_io_rq 1 (not in Keel)
            flush_on_last_del yes
            fast_io_fail_tmo 15
            dev_loss_tmo 15
        }

        # Kaminario
        device {
            vendor "KMNRIO"
            product "K2"
            path_grouping_policy multibus
        }

        # StorCentric: Nexsan
        device {
            vendor "NEXSAN"
            product "NXS-B0"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
            no_path_retry 15
        }
        device {
            vendor "NEXSAN"
            product "SATAB"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
            no_path_retry 15
        }
        device {
            vendor "Nexsan"
            product "(NestOS|NST5000)"
            path_grouping_policy group_by_prio
            prio alua
            hardware_handler "1 alua"
            failback immediate
            no_path_retry 30
        }

        # StorCentric: Violin
        device {
            vendor "VIOLIN"
            product "SAN ARRAY$"
            path_grouping_policy group_by_serial
            no_path_retry 30
        }
        device {
            vendor "VIOLIN"
            product "SAN ARRAY ALUA"
            path_grouping_policy group_by_prio
            prio alua
            hardware_handler "1 alua"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "VIOLIN"
            product "CONCERTO ARRAY"
            path_grouping_policy multibus
            no_path_retry 30
        }

        # StorCentric: Xiotech
        device {
            vendor "(XIOTECH|XIOtech)"
            product "ISE"
            path_grouping_policy multibus
            no_path_retry 12
        }
        device {
            vendor "(XIOTECH|XIOtech)"
            product "IGLU DISK"
            path_grouping_policy multibus
            no_path_retry 30
        }
        device {
            vendor "(XIOTECH|XIOtech)"
            product "Magnitude"
            path_grouping_policy multibus
            no_path_retry 30
        }

        # StorCentric: Vexata
        device {
            vendor "Vexata"
            product "VX"
            path_grouping_policy multibus
            no_path_retry 30
        }

        # Promise Technology
        device {
            vendor "Promise"
            product "VTrak"
            product_blacklist "VTrak V-LUN"
            path_grouping_policy group_by_prio
            prio alua
            hardware_handler "1 alua"
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "Promise"
            product "Vess"
            product_blacklist "Vess V-LUN"
            path_grouping_policy group_by_prio
            prio alua
            hardware_handler "1 alua"
            failback immediate
            no_path_retry 30
        }

        # Infortrend
        device {
            vendor "^IFT"
            product ".*"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
            no_path_retry 30
        }

        # Seagate (Dot Hill)
        device {
            vendor "DotHill"
            product "SANnet"
            path_grouping_policy multibus
            no_path_retry 30
        }
        device {
            vendor "DotHill"
            product "R/Evo"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
            no_path_retry 30
        }
        device {
            vendor "DotHill"
            product "^DH"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
            no_path_retry 30
        }

        # AccelStor
        device {
            vendor "AStor"
            product "NeoSapphire"
            path_grouping_policy multibus
            no_path_retry 30
        }

        # Inspur
        device {
            vendor "INSPUR"
            product "MCS"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
        }

        # MacroSAN
        device {
            vendor "MacroSAN"
            product "LU"
            path_grouping_policy group_by_prio
            prio alua
            failback immediate
            no_path_retry 30
        }
    }
    """#
}
